//! Hostile legacy torch files (`tests/weights_fixtures/make_hostile.py`): each is small but,
//! read naively, makes the reader build something enormous out of memoised pickle values. Each
//! must be refused within a fixed memory and time.
//!
//! This test binary's allocator refuses to hold more than [`CAP`] bytes at once, so a reader
//! that runs away aborts the binary (a failure) instead of exhausting the machine; each test
//! also checks the peak it allocated and the time it took.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nst_weights::legacy::{read_legacy, LegacyError};
use nst_weights::{convert_legacy, WeightsError};

/// The most this binary may hold at once.
const CAP: usize = 256 << 20;
/// The most one read may allocate beyond what was live when it started. The reader's values
/// are proportional to the file (about 33 bytes per byte of the 600 KB duplicate-names file);
/// before the fixes each file wanted more than `CAP`.
const MAX_PEAK: usize = 32 << 20;
/// The longest one read may take (debug build, a loaded 2-core machine; each takes
/// milliseconds).
const MAX_TIME: Duration = Duration::from_secs(5);

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and refusing to go past [`CAP`].
struct Capped;

impl Capped {
    fn reserve(size: usize) -> bool {
        let now = LIVE.fetch_add(size, SeqCst) + size;
        if now > CAP {
            LIVE.fetch_sub(size, SeqCst);
            return false;
        }
        PEAK.fetch_max(now, SeqCst);
        true
    }
}

// SAFETY: every call is forwarded to `System` with the same layout; only counting is added,
// and a refused allocation returns null as `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !Self::reserve(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` with `layout`, as the caller guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        match (p.is_null(), new_size > old) {
            (true, true) => {
                LIVE.fetch_sub(new_size - old, SeqCst);
            }
            (false, false) => {
                LIVE.fetch_sub(old - new_size, SeqCst);
            }
            _ => {}
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

/// One measurement at a time: the peak is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/weights_fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads fixture `name` with `read`, checking the time and the memory it took, and returns
/// what it returned.
fn refused_in_bounds<T>(name: &str, read: impl FnOnce(&[u8]) -> T) -> T {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = fixture(name);
    let base = LIVE.load(SeqCst);
    PEAK.store(base, SeqCst);
    let start = Instant::now();
    let out = read(&bytes);
    let took = start.elapsed();
    let peak = PEAK.load(SeqCst) - base;
    assert!(took < MAX_TIME, "{name}: took {took:?}");
    assert!(
        peak < MAX_PEAK,
        "{name}: allocated {peak} bytes at the peak"
    );
    eprintln!(
        "{name}: {} bytes, refused in {took:?}, peak {peak} bytes",
        bytes.len()
    );
    out
}

/// Asserts that `read_legacy` refuses fixture `name` in bounds as `Malformed` with `detail`.
fn refused_as_malformed(name: &str, detail: &str) {
    match refused_in_bounds(name, |b| read_legacy(b).unwrap_err()) {
        LegacyError::Malformed { detail: d, .. } => assert_eq!(d, detail, "{name}"),
        other => panic!("{name}: expected Malformed, got {other:?}"),
    }
}

/// A tuple of 64 tuples of 64 … 14 deep in the protocol-version pickle: the error names the
/// value's kind instead of printing its 64^14 leaves.
#[test]
fn memo_bomb_in_an_error_message() {
    refused_as_malformed(
        "hostile_memo_bomb.bin",
        "expected protocol version 1001, found a tuple",
    );
}

/// 6000 names for one tensor spanning a whole 48 KiB storage: refused before copying, since
/// the tensors would take more bytes than their storages hold.
#[test]
fn one_storage_copied_for_many_names() {
    let e = refused_in_bounds("hostile_copy_bomb.bin", |b| read_legacy(b).unwrap_err());
    assert_eq!(
        e,
        LegacyError::TooManyBytes {
            tensor_bytes: 6000 * (48 << 10),
            storage_bytes: 48 << 10,
        }
    );
    // Through the public converter too.
    let e = refused_in_bounds("hostile_copy_bomb.bin", |b| convert_legacy(b).unwrap_err());
    assert!(
        matches!(
            e,
            WeightsError::Legacy {
                source: LegacyError::TooManyBytes { .. },
                ..
            }
        ),
        "{e}"
    );
}

/// 60 000 distinct names and then the first again: found with a set, not 1.8e9 comparisons
/// (90 s for 100 000 names before the fix).
#[test]
fn duplicate_name_among_many() {
    refused_as_malformed("hostile_duplicate_names.bin", "entry `!!!` appears twice");
}

/// One 64 KiB string listed 8000 times as a storage key: the keys are shared, not copied.
#[test]
fn storage_key_copied_for_many_references() {
    let e = refused_in_bounds("hostile_key_bomb.bin", |b| read_legacy(b).unwrap_err());
    let LegacyError::Storage { key, detail } = e else {
        panic!("{e:?}")
    };
    assert_eq!(key.len(), 64 << 10);
    assert_eq!(detail, "listed in the storage keys but used by no tensor");
}

/// 1024 tensors whose size and stride are one tuple of 32768 ones: refused at the first, since
/// no weights tensor has more than a few dimensions.
#[test]
fn shape_copied_for_many_tensors() {
    refused_as_malformed(
        "hostile_dims_bomb.bin",
        "_rebuild_tensor_v2: the size has 32768 dimensions, more than the 16 supported",
    );
}
