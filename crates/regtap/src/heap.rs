//! The process's allocator, chosen per command.
//!
//! The proxy streams bodies through a few large buffers, which glibc's
//! malloc serves best once `regtap_proxy::start` has tuned it: with
//! mimalloc, raw downloads through the proxy took 12–23% more CPU per GiB
//! (bench/proxy-throughput.sh). The commands that only analyse a capture
//! (`inspect`, `har`, `diagram`) make and drop millions of small values,
//! which mimalloc serves a quarter faster: on the 100k-flow capture of
//! bench/scale.sh, `inspect` 3.13 → 2.32 s and `har` 8.38 → 6.41 s (runs
//! interleaved on a 2-core machine). So the process starts on glibc's
//! malloc, and those commands switch to mimalloc before they read anything
//! ([`analyse_with_mimalloc`]).
//!
//! Blocks made before the switch stay glibc's: a block is freed by the
//! allocator whose page map holds it. mimalloc is built without transparent
//! huge pages: with them (`madvise`d), `inspect --json` of the 100k-flow
//! capture took 2.73–3.24 s on that machine, against 2.47–2.62 s without.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys as mimalloc;

/// glibc's malloc until [`analyse_with_mimalloc`], mimalloc after it.
pub struct SwitchableHeap;

/// Set once and never cleared: from then on new blocks come from mimalloc.
static MIMALLOC: AtomicBool = AtomicBool::new(false);

/// New blocks come from mimalloc from now on.
pub fn analyse_with_mimalloc() {
    MIMALLOC.store(true, Ordering::Relaxed);
}

/// Whether mimalloc made the live block at `ptr`. Before the switch no
/// block is mimalloc's; after it, mimalloc's page map knows its own blocks
/// and none of glibc's. (A block that crossed to another thread after the
/// switch crossed with a synchronising hand-over, which makes the switch
/// visible there too.)
fn from_mimalloc(ptr: *mut u8) -> bool {
    // SAFETY: mi_is_in_heap_region only reads mimalloc's page map; before
    // mimalloc's first block it finds nothing.
    MIMALLOC.load(Ordering::Relaxed) && unsafe { mimalloc::mi_is_in_heap_region(ptr.cast()) }
}

// SAFETY: every block is made by one of the two allocators, as `Layout`
// asks (mimalloc's aligned calls take the alignment), and given back to the
// one that made it (`from_mimalloc`).
unsafe impl GlobalAlloc for SwitchableHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) {
            // SAFETY: as `GlobalAlloc::alloc`; mimalloc takes any size.
            unsafe { mimalloc::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        } else {
            // SAFETY: the caller's guarantees, passed on.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if MIMALLOC.load(Ordering::Relaxed) {
            // SAFETY: as `alloc`.
            unsafe { mimalloc::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        } else {
            // SAFETY: the caller's guarantees, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if from_mimalloc(ptr) {
            // SAFETY: a live block of mimalloc's, given back once.
            unsafe { mimalloc::mi_free(ptr.cast()) }
        } else {
            // SAFETY: a live block of glibc's, as the caller guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if from_mimalloc(ptr) {
            // SAFETY: a live block of mimalloc's, with its alignment.
            unsafe { mimalloc::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast() }
        } else {
            // SAFETY: a live block of glibc's grows or shrinks in glibc.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

/// `regtap tui` holds a whole capture in glibc's heaps. The threads that
/// parse a capture ahead allocate its flows in glibc's per-thread heaps,
/// which grow by 128 KiB at a time, one `mprotect` each: reading, decoding
/// and linking a 100k-flow capture spent 9% of its CPU in `mprotect`
/// (perf). Growing them by 64 MiB at a time took the load from 0.69 to
/// 0.55 s, at the same peak RSS (pages are still touched only as used).
/// (mimalloc did not open the TUI any sooner; the live view runs in
/// `regtap proxy --tui`.) The proxy tunes glibc its own way
/// (`regtap_proxy::start`).
pub fn grow_in_large_steps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; it touches no
    // memory of ours.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary runs on [`SwitchableHeap`] too (`main.rs`): the
    /// switch happens while other tests may be allocating on other threads.
    #[test]
    fn blocks_made_before_the_switch_are_freed_and_grown_by_glibc() {
        let before: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 1 + i * 7]).collect();
        let mut grown_before = vec![1u64; 3];
        analyse_with_mimalloc();
        let after: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 1 + i * 7]).collect();
        assert!(from_mimalloc(after[500].as_ptr().cast_mut()));
        assert!(!from_mimalloc(before[500].as_ptr().cast_mut()));
        grown_before.extend(0..100_000);
        assert_eq!(grown_before.len(), 100_003);
        assert_eq!(grown_before[..3], [1, 1, 1]);
        // A block made by mimalloc and one made by glibc, freed on another thread.
        let handed_over = std::thread::spawn(move || {
            let sums = (
                before.iter().map(Vec::len).sum::<usize>(),
                after.iter().map(Vec::len).sum::<usize>(),
            );
            drop((before, after));
            sums
        });
        assert_eq!(handed_over.join().ok(), Some((3_497_500, 3_497_500)));
        // Over-aligned blocks keep their alignment in mimalloc.
        let layout = Layout::from_size_align(100, 4096).unwrap_or_else(|_| unreachable!());
        // SAFETY: a block of `layout`, given back with it.
        unsafe {
            let ptr = SwitchableHeap.alloc_zeroed(layout);
            assert!(!ptr.is_null() && (ptr as usize).is_multiple_of(4096) && *ptr == 0);
            let ptr = SwitchableHeap.realloc(ptr, layout, 10_000);
            assert!((ptr as usize).is_multiple_of(4096));
            SwitchableHeap.dealloc(ptr, Layout::from_size_align_unchecked(10_000, 4096));
        }
    }
}
