//! Independent decoders for what the end-to-end tests check in a capture:
//! URLs, distribution's `_state`, JWTs, gzip'd layers. They are written from
//! the specifications, not shared with regtap-decode, so the two check each other.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hmac::Mac as _;
use sha2::Digest as _;

/// The parts of an absolute URL: authority, path and decoded query pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub authority: String,
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl UrlParts {
    pub fn parse(url: &str) -> Option<Self> {
        let parsed = url::Url::parse(url).ok()?;
        let authority = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str()?),
            None => parsed.host_str()?.to_owned(),
        };
        Some(UrlParts {
            authority,
            path: parsed.path().to_owned(),
            query: parsed.query_pairs().into_owned().collect(),
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn params<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// distribution's upload state: base64url(HMAC-SHA256(http.secret, json) ‖ json).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct UploadState {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "UUID")]
    pub uuid: String,
    #[serde(rename = "Offset")]
    pub offset: i64,
    #[serde(rename = "StartedAt")]
    pub started_at: String,
}

/// Decodes a `_state` value and checks its HMAC with `secret`.
pub fn decode_state(value: &str, secret: &[u8]) -> Result<UploadState, String> {
    let raw = URL_SAFE
        .decode(value)
        .or_else(|_| URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')))
        .map_err(|e| format!("_state is not base64url: {e}"))?;
    if raw.len() <= 32 {
        return Err(format!("_state too short: {} bytes", raw.len()));
    }
    let (mac, json) = raw.split_at(32);
    let mut expected =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|e| format!("HMAC key: {e}"))?;
    expected.update(json);
    expected
        .verify_slice(mac)
        .map_err(|_| "_state HMAC does not match http.secret".to_owned())?;
    serde_json::from_slice(json).map_err(|e| format!("_state JSON: {e}"))
}

/// The header and claims of a JWT (signature not checked).
pub fn jwt_parts(jwt: &str) -> Result<(serde_json::Value, serde_json::Value), String> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWT has three parts".to_owned());
    };
    let decode = |part: &str| -> Result<serde_json::Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| format!("JWT part is not base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("JWT part is not JSON: {e}"))
    };
    Ok((decode(header)?, decode(claims)?))
}

/// Checks the RS256 signature of `jwt` with an RSA public key (SubjectPublicKeyInfo DER).
pub fn verify_rs256(jwt: &str, public_key_der: &[u8]) -> Result<(), String> {
    let (signing_input, signature) = jwt
        .rsplit_once('.')
        .ok_or_else(|| "a JWT has three parts".to_owned())?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| format!("signature is not base64url: {e}"))?;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der,
    )
    .verify(signing_input.as_bytes(), &signature)
    .map_err(|_| "RS256 signature does not verify".to_owned())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `sha256:<hex>` of the gunzipped `bytes`.
pub fn gunzip_digest(bytes: &[u8]) -> Result<String, String> {
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    let mut hasher = sha2::Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut decoder, &mut buf).map_err(|e| format!("gunzip: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(secret: &[u8], json: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(json.as_bytes());
        let mut raw = mac.finalize().into_bytes().to_vec();
        raw.extend_from_slice(json.as_bytes());
        URL_SAFE.encode(raw)
    }

    #[test]
    fn state_with_the_right_secret_decodes_and_a_wrong_one_is_refused() {
        let json =
            r#"{"Name":"lab/app","UUID":"u-1","Offset":42,"StartedAt":"2024-01-01T00:00:00Z"}"#;
        let value = pack(b"s3cret", json);
        let state = decode_state(&value, b"s3cret").unwrap();
        assert_eq!(state.name, "lab/app");
        assert_eq!(state.offset, 42);
        assert!(decode_state(&value, b"other").is_err());
        assert!(decode_state("not base64!", b"s3cret").is_err());
    }

    #[test]
    fn url_query_values_are_percent_decoded() {
        let parts = UrlParts::parse(
            "https://auth.test:5001/token?scope=repository%3Alab%2Fapp%3Apull&scope=b&service=registry.test",
        )
        .unwrap();
        assert_eq!(parts.authority, "auth.test:5001");
        assert_eq!(parts.path, "/token");
        assert_eq!(
            parts.params("scope").collect::<Vec<_>>(),
            ["repository:lab/app:pull", "b"]
        );
    }
}
