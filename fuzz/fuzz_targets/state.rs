#![no_main]
//! `regtap decode state`: distribution's signed `_state`, with and without
//! a secret to check its HMAC against.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = std::str::from_utf8(data) {
        for secret in [None, Some(&b"secret"[..])] {
            if let Ok(info) = regtap_decode::state::decode(value, secret) {
                let _ = serde_json::to_string(&info);
            }
        }
    }
});
