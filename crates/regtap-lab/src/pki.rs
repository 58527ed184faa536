//! A throwaway PKI: the lab CA, one TLS server certificate for every lab host
//! name, and the key and certificate the token server signs JWTs with.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256, SanType, SigningKey as _,
};

use crate::LabError;

/// The host names of one lab, `registry-SUFFIX.test` and `auth-SUFFIX.test`,
/// with a suffix unique to the lab: no `/etc/hosts` entry or DNS answer on the
/// machine can name them, so only the proxy's `--resolve` knows where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHosts {
    suffix: String,
}

impl LabHosts {
    /// The process id and 32 random bits.
    pub fn unique() -> Result<Self, LabError> {
        let mut random = [0u8; 4];
        aws_lc_rs::rand::fill(&mut random)
            .map_err(|e| LabError::Setup(format!("random host suffix: {e}")))?;
        Ok(LabHosts {
            suffix: format!("{}-{}", std::process::id(), hex::encode(random)),
        })
    }

    /// `SERVICE-SUFFIX.test`, for a server of the lab (or of a test) named SERVICE.
    pub fn name(&self, service: &str) -> String {
        format!("{service}-{}.test", self.suffix)
    }

    /// The registries' name (without port).
    pub fn registry(&self) -> String {
        self.name("registry")
    }

    /// The token server's name (without port).
    pub fn auth(&self) -> String {
        self.name("auth")
    }
}

pub struct Pki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub server_cert_der: Vec<u8>,
    pub server_key_der: Vec<u8>,
    pub signing_cert_pem: String,
    pub signing_cert_der: Vec<u8>,
    signing_key: KeyPair,
}

/// Where [`Pki::write_to`] put the files.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub signing_cert: PathBuf,
}

fn pki_err(what: &str) -> impl FnOnce(rcgen::Error) -> LabError + '_ {
    move |e| LabError::Setup(format!("{what}: {e}"))
}

fn params_named(common_name: &str) -> Result<CertificateParams, LabError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("params"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "regtap lab");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(2);
    Ok(params)
}

/// A 2048-bit RSA key (rcgen generates RSA keys only with its aws-lc-rs backend).
fn rsa_key_pair() -> Result<KeyPair, LabError> {
    use aws_lc_rs::encoding::AsDer as _;
    let generated = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| LabError::Setup(format!("token signing key: {e}")))?;
    let pkcs8 = generated
        .as_der()
        .map_err(|e| LabError::Setup(format!("token signing key: {e}")))?;
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_RSA_SHA256)
        .map_err(pki_err("token signing key"))
}

impl Pki {
    /// A CA and a server certificate for the registry and auth names of `hosts`.
    pub fn generate(hosts: &LabHosts) -> Result<Self, LabError> {
        let ca_key = KeyPair::generate().map_err(pki_err("CA key"))?;
        let mut ca_params = params_named("regtap lab CA")?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(pki_err("CA cert"))?;
        let ca = Issuer::new(ca_params, &ca_key);

        let server_key = KeyPair::generate().map_err(pki_err("server key"))?;
        let mut server_params = params_named(&hosts.registry())?;
        server_params.subject_alt_names = vec![
            SanType::DnsName(hosts.registry().try_into().map_err(pki_err("SAN"))?),
            SanType::DnsName(hosts.auth().try_into().map_err(pki_err("SAN"))?),
            SanType::DnsName("localhost".try_into().map_err(pki_err("SAN"))?),
            SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        ];
        server_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .map_err(pki_err("server cert"))?;

        // distribution checks the token's x5c chain against `rootcertbundle` and
        // wants keyUsage digitalSignature on the signing certificate.
        let signing_key = rsa_key_pair()?;
        let mut signing_params = params_named("regtap lab token signer")?;
        signing_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let signing_cert = signing_params
            .self_signed(&signing_key)
            .map_err(pki_err("token signing cert"))?;

        Ok(Pki {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            server_cert_der: server_cert.der().to_vec(),
            server_key_der: server_key.serialize_der(),
            signing_cert_pem: signing_cert.pem(),
            signing_cert_der: signing_cert.der().to_vec(),
            signing_key,
        })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWT `RS256`) over `message`.
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, LabError> {
        self.signing_key
            .sign(message)
            .map_err(pki_err("signing a token"))
    }

    /// The signing certificate as a JWT `x5c` entry (standard base64 of the DER).
    pub fn signing_cert_x5c(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&self.signing_cert_der)
    }

    /// The token signing key's public key (SubjectPublicKeyInfo DER).
    pub fn signing_public_key_der(&self) -> Vec<u8> {
        use rcgen::PublicKeyData as _;
        self.signing_key.subject_public_key_info()
    }

    pub fn write_to(&self, dir: &Path) -> Result<PkiFiles, LabError> {
        let files = PkiFiles {
            ca: dir.join("lab-ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            signing_cert: dir.join("token-signing.pem"),
        };
        crate::write_file(&files.ca, self.ca_pem.as_bytes())?;
        crate::write_file(&files.server_cert, self.server_cert_pem.as_bytes())?;
        crate::write_file(&files.server_key, self.server_key_pem.as_bytes())?;
        crate::write_file(&files.signing_cert, self.signing_cert_pem.as_bytes())?;
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn rs256_signatures_verify_with_the_public_key_and_fail_when_tampered() {
        let hosts = LabHosts::unique().map_err(|e| e.to_string()).unwrap();
        let pki = Pki::generate(&hosts).map_err(|e| e.to_string()).unwrap();
        let input = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
        let signature = pki
            .sign_rs256(input.as_bytes())
            .map_err(|e| e.to_string())
            .unwrap();
        let jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));
        let key = pki.signing_public_key_der();
        crate::verify::verify_rs256(&jwt, &key).unwrap();
        let tampered = format!("{input}x.{}", URL_SAFE_NO_PAD.encode(&signature));
        assert!(crate::verify::verify_rs256(&tampered, &key).is_err());
    }
}
