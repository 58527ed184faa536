//! The certificate authority: files, fingerprint, refusal to overwrite, name
//! constraints, and the leaves it issues.

use std::os::unix::fs::PermissionsExt as _;

use regtap_proxy::{Ca, CaError, CaOptions, fingerprint};
use sha2::Digest as _;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_a_private_key_and_a_ca_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("regtap");
    let ca = Ca::init(&home, &CaOptions::default()).unwrap();
    assert_eq!(mode(&ca.key_path()), 0o600);
    assert_eq!(mode(&home), 0o700);

    let pem = std::fs::read_to_string(ca.cert_path()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    assert!(cert.is_ca());
    assert_eq!(cert.subject(), cert.issuer());
    assert_eq!(cert.name_constraints().unwrap(), None);

    let info = ca.info().unwrap();
    let expected: Vec<String> = sha2::Sha256::digest(ca.cert_der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(info.sha256_fingerprint, expected.join(":"));
    assert_eq!(info.sha256_fingerprint, fingerprint(ca.cert_der()));
    assert!(
        info.subject.contains("CN=regtap local CA"),
        "{}",
        info.subject
    );
    assert!(info.not_before < info.not_after);
    assert!(info.name_constraints.is_empty());
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ca::init(dir.path(), &CaOptions::default()).unwrap();
    let err = Ca::init(dir.path(), &CaOptions::default()).err().unwrap();
    assert!(matches!(err, CaError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    let loaded = Ca::load(dir.path()).unwrap();
    assert_eq!(
        loaded.cert_der(),
        first.cert_der(),
        "the old CA must be untouched"
    );

    let forced = Ca::init(
        dir.path(),
        &CaOptions {
            force: true,
            ..CaOptions::default()
        },
    )
    .unwrap();
    assert_ne!(forced.cert_der(), first.cert_der());
    assert_eq!(mode(&forced.key_path()), 0o600);
    assert_eq!(Ca::load(dir.path()).unwrap().cert_der(), forced.cert_der());
}

#[test]
fn name_constraints_are_in_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::init(
        dir.path(),
        &CaOptions {
            name_constraints: vec!["registry.test".to_owned(), "docker.io".to_owned()],
            force: false,
            validity_days: None,
        },
    )
    .unwrap();
    let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    let constraints = cert.name_constraints().unwrap().expect("name constraints");
    assert!(constraints.critical);
    let permitted: Vec<String> = constraints
        .value
        .permitted_subtrees
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| match &s.base {
            GeneralName::DNSName(name) => (*name).to_owned(),
            other => panic!("unexpected subtree {other:?}"),
        })
        .collect();
    assert_eq!(permitted, ["registry.test", "docker.io"]);
    assert_eq!(ca.info().unwrap().name_constraints, permitted);
}

#[test]
fn bad_name_constraints_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let options = CaOptions {
        name_constraints: vec!["not a domain".to_owned()],
        force: false,
        validity_days: None,
    };
    let err = Ca::init(dir.path(), &options).err().unwrap();
    assert!(matches!(err, CaError::BadNameConstraint { .. }), "{err}");
    assert!(!Ca::cert_path_in(dir.path()).exists());
}

#[test]
fn a_name_constrained_ca_cannot_vouch_for_other_names() {
    let dir = tempfile::tempdir().unwrap();
    let options = CaOptions {
        name_constraints: vec!["registry.test".to_owned()],
        force: false,
        validity_days: None,
    };
    let ca = Ca::init(dir.path(), &options).unwrap();
    let authority = ca.leaf_authority(regtap_proxy::crypto_provider()).unwrap();
    let (inside, _) = authority.issue_leaf("eu.registry.test").unwrap();
    assert_eq!(verify(&ca, &inside, "eu.registry.test"), Ok(()));
    let (outside, _) = authority.issue_leaf("bank.example").unwrap();
    let err = verify(&ca, &outside, "bank.example").unwrap_err();
    assert!(
        err.contains("NameConstraint") || err.contains("name constraint"),
        "{err}"
    );
}

#[test]
fn load_or_init_creates_once_then_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (created, was_created) = Ca::load_or_init(dir.path()).unwrap();
    assert!(was_created);
    let (loaded, was_created) = Ca::load_or_init(dir.path()).unwrap();
    assert!(!was_created);
    assert_eq!(loaded.cert_der(), created.cert_der());
}

#[test]
fn load_reports_a_missing_ca_and_a_broken_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(Ca::load(dir.path()), Err(CaError::Missing { .. })));
    let ca = Ca::init(dir.path(), &CaOptions::default()).unwrap();
    std::fs::write(
        ca.key_path(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = Ca::load(dir.path()).err().unwrap();
    assert!(err.to_string().contains("ca-key.pem"), "{err}");
}

#[test]
fn leaves_have_their_own_keys_and_the_right_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::init(dir.path(), &CaOptions::default()).unwrap();
    let authority = ca.leaf_authority(regtap_proxy::crypto_provider()).unwrap();
    let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).unwrap();

    let (dns_der, _) = authority.issue_leaf("registry.test").unwrap();
    let (_, dns_leaf) = X509Certificate::from_der(&dns_der).unwrap();
    assert_eq!(dns_leaf.issuer(), ca_cert.subject());
    assert!(!dns_leaf.is_ca());
    assert_ne!(
        dns_leaf.public_key().raw,
        ca_cert.public_key().raw,
        "a leaf must not reuse the CA's key"
    );
    assert_eq!(verify(&ca, &dns_der, "registry.test"), Ok(()));
    assert!(verify(&ca, &dns_der, "other.test").is_err());
    assert_eq!(
        sans(&dns_leaf),
        [GeneralName::DNSName("registry.test")].map(|n| format!("{n:?}"))
    );

    let (other_der, _) = authority.issue_leaf("other.test").unwrap();
    let (_, other_leaf) = X509Certificate::from_der(&other_der).unwrap();
    assert_ne!(other_leaf.public_key().raw, dns_leaf.public_key().raw);

    let (ip_der, _) = authority.issue_leaf("127.0.0.1").unwrap();
    let (_, ip_leaf) = X509Certificate::from_der(&ip_der).unwrap();
    assert_eq!(
        sans(&ip_leaf),
        [GeneralName::IPAddress(&[127, 0, 0, 1])].map(|n| format!("{n:?}"))
    );
    assert_eq!(verify(&ca, &ip_der, "127.0.0.1"), Ok(()));
    let (v6_der, _) = authority.issue_leaf("[::1]").unwrap();
    let (_, v6_leaf) = X509Certificate::from_der(&v6_der).unwrap();
    let mut loopback = [0u8; 16];
    loopback[15] = 1;
    assert_eq!(
        sans(&v6_leaf),
        [GeneralName::IPAddress(&loopback)].map(|n| format!("{n:?}"))
    );
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                Some(san.general_names.iter().map(|n| format!("{n:?}")).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// Checks `leaf` for `name` as a TLS client trusting only `ca` would.
fn verify(ca: &Ca, leaf: &[u8], name: &str) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der().to_vec()))
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        regtap_proxy::crypto_provider(),
    )
    .build()
    .unwrap();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.to_vec()),
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn a_key_or_directory_open_to_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("regtap");
    let ca = Ca::init(&home, &CaOptions::default()).unwrap();
    let set = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    set(&ca.key_path(), 0o644);
    let err = Ca::load(&home).err().unwrap();
    assert!(matches!(err, CaError::Exposed { mode: 0o644, .. }), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    set(&ca.key_path(), 0o600);
    set(&home, 0o755);
    let err = Ca::load(&home).err().unwrap();
    assert!(err.to_string().contains("chmod 700"), "{err}");
    // Search permission alone lets nobody list or replace the key.
    set(&home, 0o711);
    assert!(Ca::load(&home).is_ok());
}

#[test]
fn a_shorter_validity_is_honoured_and_nonsense_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = CaOptions {
        validity_days: Some(30),
        ..CaOptions::default()
    };
    let ca = Ca::init(dir.path(), &options).unwrap();
    let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    let validity = cert.validity();
    let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400;
    assert_eq!(days, 30, "one hour of backdating aside");
    for bad in [0, regtap_proxy::CA_VALIDITY_DAYS + 1] {
        let options = CaOptions {
            validity_days: Some(bad),
            force: true,
            ..CaOptions::default()
        };
        assert!(matches!(
            Ca::init(dir.path(), &options),
            Err(CaError::BadValidity(_))
        ));
    }
}
