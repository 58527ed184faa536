//! HAR import streams: memory stays bounded by one entry plus the flows kept,
//! whatever the file's size, and the limits on entries, entry size and
//! inflated size are clear errors. One test per binary concerns memory, as the
//! counting allocator sees every thread of this test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};

use regtap_har::{ImportError, ImportLimits, import_reader};

struct PeakCounting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only
// counters are updated besides.
unsafe impl GlobalAlloc for PeakCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakCounting = PeakCounting;

/// A HAR produced on the fly, `count` entries each carrying `padding` bytes
/// of an extension field regtap ignores: the file is never in memory.
struct GeneratedHar {
    count: usize,
    padding: usize,
    next: usize,
    pending: Vec<u8>,
    position: usize,
}

impl GeneratedHar {
    fn new(count: usize, padding: usize) -> Self {
        GeneratedHar {
            count,
            padding,
            next: 0,
            pending: br#"{"log": {"version": "1.2", "creator": {"name": "gen"}, "entries": ["#
                .to_vec(),
            position: 0,
        }
    }

    fn refill(&mut self) {
        self.pending.clear();
        self.position = 0;
        if self.next > self.count {
            return;
        }
        if self.next == self.count {
            self.pending.extend_from_slice(b"]}}");
        } else {
            let comma = if self.next == 0 { "" } else { "," };
            // Small numbers in an array: the costliest JSON to hold as a tree.
            let junk = "1,".repeat(self.padding / 2);
            let entry = format!(
                r#"{comma}{{"startedDateTime": "2024-07-22T17:00:00Z", "time": 1,
                "request": {{"method": "GET", "url": "https://r.test/v2/{}", "httpVersion": "HTTP/1.1",
                  "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0}},
                "response": {{"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [],
                  "cookies": [], "content": {{"size": 0, "mimeType": "x-unknown"}}, "redirectURL": "",
                  "headersSize": -1, "bodySize": 0}},
                "cache": {{}}, "timings": {{"send": 0, "wait": 1, "receive": 0}},
                "_junk": [{junk}0]}}"#,
                self.next
            );
            self.pending.extend_from_slice(entry.as_bytes());
        }
        self.next += 1;
    }
}

impl Read for GeneratedHar {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.position == self.pending.len() {
            self.refill();
        }
        let n = buf.len().min(self.pending.len() - self.position);
        buf[..n].copy_from_slice(&self.pending[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[test]
fn memory_stays_bounded_by_one_entry_and_the_flows() {
    // 2,000 entries of 20 KB: a 40 MB file that took ~2.5 GB as one JSON tree.
    let (count, padding) = (2_000, 20_000);
    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let imported = import_reader(GeneratedHar::new(count, padding), &ImportLimits::default())
        .expect("imports");
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    assert_eq!(imported.flows.len(), count);
    assert_eq!(imported.creator.as_deref(), Some("gen"));
    let file_size = count * padding;
    eprintln!(
        "import of a {} MB HAR: peak heap {:.1} MB",
        file_size / 1_000_000,
        peak as f64 / 1e6
    );
    assert!(
        peak < 32 << 20,
        "peak heap {peak} bytes for a {file_size}-byte HAR: not streaming"
    );

    // The limits, each a clear error.
    let few = ImportLimits {
        max_entries: 3,
        ..ImportLimits::default()
    };
    let err = import_reader(GeneratedHar::new(5, 10), &few).unwrap_err();
    assert_eq!(
        err,
        ImportError::TooLarge(
            "the HAR has more than 3 entries; regtap reads at most that many".to_owned()
        )
    );
    let small = ImportLimits {
        max_entry_bytes: 4096,
        ..ImportLimits::default()
    };
    let err = import_reader(GeneratedHar::new(3, 10_000), &small).unwrap_err();
    assert!(
        matches!(&err, ImportError::TooLarge(reason) if reason.starts_with("HAR entry 1 is larger than 4.0 KiB")),
        "{err}"
    );

    // A .zhar that inflates without end (a zlib bomb) is stopped.
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(br#"{"log": {"entries": ["#)
        .expect("compress");
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&spaces).expect("compress");
    }
    let bomb = encoder.finish().expect("compress");
    let tight = ImportLimits {
        max_inflated_bytes: 8 << 20,
        ..ImportLimits::default()
    };
    let err = import_reader(&bomb[..], &tight).unwrap_err();
    assert!(
        matches!(&err, ImportError::TooLarge(reason) if reason.contains("inflates to more than 8.0 MiB")),
        "{err}"
    );
}
