#![no_main]
//! A capture file as `regtap inspect` reads it, then the whole pipeline over
//! the flows it holds.

use libfuzzer_sys::fuzz_target;
use regtap_capture::Capture;

fuzz_target!(|data: &[u8]| {
    let _ = Capture::sniff(data);
    if let Ok(capture) = Capture::from_reader(std::path::Path::new("fuzz.jsonl"), data) {
        regtap_fuzz::run_pipeline(&capture.flows);
    }
});
