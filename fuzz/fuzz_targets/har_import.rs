#![no_main]
//! HAR import, plain and zlib-compressed (`.zhar`), with small limits so the
//! limit paths are reached, then the pipeline over what was imported.

use libfuzzer_sys::fuzz_target;
use regtap_har::{ImportLimits, import_reader, looks_like_har};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_har(data);
    let limits = ImportLimits {
        max_entries: 64,
        max_entry_bytes: 64 * 1024,
        max_inflated_bytes: 1 << 20,
    };
    if let Ok(imported) = import_reader(data, &limits) {
        regtap_fuzz::run_pipeline(&imported.flows);
    }
});
