#![no_main]
//! `regtap decode jwt` and every Bearer token the decoder sees.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        if let Ok(info) = regtap_decode::jwt::decode(token) {
            let _ = serde_json::to_string(&info);
        }
    }
});
