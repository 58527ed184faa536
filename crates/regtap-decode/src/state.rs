//! distribution's `_state` query parameter: base64url of a 32-byte
//! HMAC-SHA256 followed by the JSON `{Name, UUID, Offset, StartedAt}` it
//! signs, keyed with the registry's `http.secret`
//! (registry/handlers/hmac.go in distribution).

use hmac::{Hmac, Mac as _};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use sha2::Sha256;

use crate::jwt::base64url;
use crate::model::{DecodeError, HmacStatus, StateInfo};

const MAC_LEN: usize = 32;

#[derive(Deserialize)]
struct UploadState {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "UUID", default)]
    uuid: String,
    #[serde(rename = "Offset", default)]
    offset: i64,
    #[serde(rename = "StartedAt", default)]
    started_at: String,
}

/// Why a value is not a distribution `_state`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("percent-decoding does not give text")]
    NotText,
    #[error("not base64url: {0}")]
    NotBase64url(base64::DecodeError),
    #[error("{len} bytes, shorter than the {MAC_LEN}-byte HMAC that begins it")]
    TooShort { len: usize },
    /// `reason`: the JSON parser's.
    #[error("the bytes after the HMAC are not the upload state JSON: {0}")]
    NotUploadState(String),
}

/// Decodes a `_state` value as found in a URL (percent-encoded or not, with
/// or without `=` padding). With `secret`, the HMAC is checked.
pub fn decode(value: &str, secret: Option<&[u8]>) -> Result<StateInfo, DecodeError> {
    let unescaped = percent_decode_str(value.trim())
        .decode_utf8()
        .map_err(|_| StateError::NotText)?;
    let bytes = base64url(&unescaped).map_err(StateError::NotBase64url)?;
    let (Some(mac), Some(message)) = (bytes.get(..MAC_LEN), bytes.get(MAC_LEN..)) else {
        return Err(StateError::TooShort { len: bytes.len() }.into());
    };
    let state: UploadState =
        serde_json::from_slice(message).map_err(|e| StateError::NotUploadState(e.to_string()))?;
    let hmac = match secret {
        None => HmacStatus::NotChecked,
        Some(secret) => match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(mut expected) => {
                expected.update(message);
                if expected.verify_slice(mac).is_ok() {
                    HmacStatus::Valid
                } else {
                    HmacStatus::Invalid
                }
            }
            Err(_) => HmacStatus::Invalid,
        },
    };
    Ok(StateInfo {
        name: state.name,
        uuid: state.uuid,
        offset: state.offset,
        started_at: state.started_at,
        hmac,
        mac_hex: hex::encode(mac),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// The three `_state` values of the seed document (Docker Hub, 2024-07-22).
    const SEED_POST_LOCATION: &str = "nkCV87II1yHCU_48NVc21qHc7HPq7oEf1DIKZmuCwTp7Ik5hbWUiOiJqb2NrZXJkcmFnb24vdGVzdCIsIlVVSUQiOiI4NDI5Yzk2NC0zYTU2LTQ2ZTUtOTUxMi1mNWM5NTU5ZjIxNzkiLCJPZmZzZXQiOjAsIlN0YXJ0ZWRBdCI6IjIwMjQtMDctMjJUMTc6MDY6NDMuNTY1ODcxNTU3WiJ9";
    const SEED_PATCH_URL: &str = "ifxCfGeZFk6-9Ww1vmIz20QeKa5mafNkGZHm6SPQKYJ7Ik5hbWUiOiJqb2NrZXJkcmFnb24vdGVzdCIsIlVVSUQiOiJmN2IxOWY5Ny0yMzNiLTRkMjktOTNkZC03MjFiMjBlNmQ2ZjgiLCJPZmZzZXQiOjAsIlN0YXJ0ZWRBdCI6IjIwMjQtMDctMjJUMTc6MDc6MjAuNjQyMzIzNDhaIn0%3D";
    const SEED_PATCH_LOCATION: &str = "eIbb6aiCKJ4yvBm73PQwwMK9oPGXr1l3F66xUAE6ZPd7Ik5hbWUiOiJqb2NrZXJkcmFnb24vdGVzdCIsIlVVSUQiOiJmN2IxOWY5Ny0yMzNiLTRkMjktOTNkZC03MjFiMjBlNmQ2ZjgiLCJPZmZzZXQiOjAsIlN0YXJ0ZWRBdCI6IjIwMjQtMDctMjJUMTc6MDc6MjBaIn0%3D";

    #[test]
    fn seed_values() {
        let s = decode(SEED_POST_LOCATION, None).unwrap();
        assert_eq!(s.name, "jockerdragon/test");
        assert_eq!(s.uuid, "8429c964-3a56-46e5-9512-f5c9559f2179");
        assert_eq!(s.offset, 0);
        assert_eq!(s.started_at, "2024-07-22T17:06:43.565871557Z");
        assert_eq!(s.hmac, HmacStatus::NotChecked);
        assert_eq!(s.mac_hex.len(), 64);

        let s = decode(SEED_PATCH_URL, None).unwrap();
        assert_eq!(s.uuid, "f7b19f97-233b-4d29-93dd-721b20e6d6f8");
        assert_eq!(s.offset, 0);
        assert_eq!(s.started_at, "2024-07-22T17:07:20.64232348Z");

        let s = decode(SEED_PATCH_LOCATION, None).unwrap();
        assert_eq!(s.name, "jockerdragon/test");
        assert_eq!(s.uuid, "f7b19f97-233b-4d29-93dd-721b20e6d6f8");
        assert_eq!(s.started_at, "2024-07-22T17:07:20Z");
        // Docker Hub's secret is unknown: any guess is refused.
        assert_eq!(
            decode(SEED_PATCH_LOCATION, Some(b"guess")).unwrap().hmac,
            HmacStatus::Invalid
        );
    }

    /// Packs like distribution's `packUploadState`: URL-safe base64 with padding.
    fn pack(secret: &[u8], json: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(json.as_bytes());
        let mut bytes = mac.finalize().into_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        base64::engine::general_purpose::URL_SAFE.encode(bytes)
    }

    #[test]
    fn hmac_verification() {
        let json =
            r#"{"Name":"lab/seq","UUID":"u-1","Offset":262435,"StartedAt":"2026-11-22T19:00:00Z"}"#;
        let value = pack(b"lab-secret", json);
        let valid = decode(&value, Some(b"lab-secret")).unwrap();
        assert_eq!(valid.hmac, HmacStatus::Valid);
        assert_eq!(valid.offset, 262_435);
        assert_eq!(
            decode(&value, Some(b"other")).unwrap().hmac,
            HmacStatus::Invalid
        );
        let escaped = value.replace('=', "%3D");
        assert_eq!(
            decode(&escaped, Some(b"lab-secret")).unwrap().hmac,
            HmacStatus::Valid
        );
        let unpadded = value.trim_end_matches('=');
        assert_eq!(
            decode(unpadded, Some(b"lab-secret")).unwrap().hmac,
            HmacStatus::Valid
        );
    }

    #[test]
    fn malformed_values_are_errors_with_a_reason() {
        let short = base64::engine::general_purpose::URL_SAFE.encode([1u8; 10]);
        let not_json = base64::engine::general_purpose::URL_SAFE.encode([b'x'; 40]);
        for (value, reason) in [
            ("%FF%FE", "percent-decoding"),
            ("!!!", "not base64url"),
            (short.as_str(), "shorter than the 32-byte HMAC"),
            (not_json.as_str(), "not the upload state JSON"),
        ] {
            let err = decode(value, None).unwrap_err().to_string();
            assert!(err.contains(reason), "{value}: {err}");
        }
    }

    #[test]
    fn truncated_and_garbled_seed_values_never_panic() {
        for cut in 0..SEED_PATCH_URL.len() {
            let _ = decode(&SEED_PATCH_URL[..cut], Some(b"k"));
        }
        let mut bytes = SEED_POST_LOCATION.as_bytes().to_vec();
        for i in 0..bytes.len() {
            bytes[i] = bytes[i].wrapping_add(7);
            let _ = decode(&String::from_utf8_lossy(&bytes), None);
        }
    }
}
