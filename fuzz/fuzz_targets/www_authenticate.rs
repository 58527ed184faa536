#![no_main]
//! `WWW-Authenticate` challenges (and the `Authorization` a client answers
//! with), through the decoder as a registry's 401 carries them.

use libfuzzer_sys::fuzz_target;
use regtap_capture::factory::FlowBuilder;
use regtap_fuzz::{decode, response_flow};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let challenge = response_flow(
        1,
        "GET",
        "https://registry.test/v2/",
        401,
        &[("WWW-Authenticate", value)],
        b"",
    );
    let answer = FlowBuilder::new(2, "GET", "https://registry.test/v2/")
        .request_header("Authorization", value)
        .status(200)
        .build();
    decode(&[challenge, answer]);
});
