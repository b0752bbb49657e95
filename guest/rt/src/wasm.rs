//! The component's side of the runtime: the global allocator, `cabi_realloc`, the panic
//! handler, `memcmp` and `bcmp`.

use alloc::string::String;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::{Reset, SizeClasses};

/// The global allocator: small blocks from size classes ([`SizeClasses`]), the rest from
/// talc (smaller and faster than dlmalloc in wasm), whose heap starts in the free tail of
/// the initial memory. See [`TailThenGrow`]. When no block is live (between two export
/// calls) and memory had to grow, the whole heap is forgotten and the next call starts it
/// over ([`ResettableTalc`]).
#[global_allocator]
// SAFETY: components built for wasm32-wasip2 run on one thread with no interrupts.
static ALLOCATOR: SizeClasses<ResettableTalc> = unsafe { SizeClasses::new(ResettableTalc::new()) };

type Talc = talc::cell::TalcCell<TailThenGrow, talc::wasm::WasmBinning>;

/// talc over [`TailThenGrow`], made anew on [`Reset::reset`]: the new one claims all of
/// linear memory after the statics as one free span on its first allocation.
pub struct ResettableTalc(UnsafeCell<Talc>);

// SAFETY: used only as the global allocator of single-threaded WebAssembly (no threads, no
// interrupts), so it is never entered from two places at once.
unsafe impl Sync for ResettableTalc {}

impl ResettableTalc {
    const fn new() -> Self {
        ResettableTalc(UnsafeCell::new(Talc::new(TailThenGrow { end: None })))
    }

    /// The talc in use.
    ///
    /// # Safety
    /// No `reset` runs while the reference is live (single-threaded, and `reset` is only
    /// called from the allocator's own free path, never during an allocation).
    unsafe fn talc(&self) -> &Talc {
        // SAFETY: the caller's contract.
        unsafe { &*self.0.get() }
    }
}

// SAFETY: every call goes to the talc in use, with the caller's layout.
unsafe impl GlobalAlloc for ResettableTalc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `GlobalAlloc`'s contract, passed on.
        unsafe { self.talc().alloc(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: `block` came from this talc (a reset happens only with no block live).
        unsafe { self.talc().dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`.
        unsafe { self.talc().realloc(block, layout, new_size) }
    }
}

/// Set when [`TailThenGrow`] grows linear memory, cleared by a reset. (wasm32 without the
/// atomics feature has one thread: these are plain loads and stores.)
static GREW: AtomicBool = AtomicBool::new(false);

// SAFETY: the new talc claims the heap afresh on its first allocation and never reads the
// old one's bookkeeping, which lived in the memory it now claims.
unsafe impl Reset for ResettableTalc {
    fn grew_since_reset(&self) -> bool {
        GREW.load(Ordering::Relaxed)
    }

    unsafe fn reset(&self) {
        GREW.store(false, Ordering::Relaxed);
        // SAFETY: single-threaded, no reference to the old talc is live (the caller's
        // contract: no block is live and no allocator call is under way).
        unsafe { *self.0.get() = Talc::new(TailThenGrow { end: None }) };
    }
}

/// Where the allocator gets memory: first the free tail of the initial linear memory (from
/// `__heap_base`, right after the static data, to the end of the initial pages), a host
/// page at a time, then pages it grows, extending the same heap.
///
/// Why not talc's `WasmGrowAndExtend` or dlmalloc: both start the heap in freshly grown
/// pages and leave the tail unused, so every instance dirties the page with the statics plus
/// the first and last page of the grown heap. Starting at `__heap_base` puts a call's small
/// allocations on the page the statics already dirty: fewer resident pages per instance,
/// which is resident memory per in-flight `ads` call (BENCHMARKS.md (e)).
///
/// Why a page at a time: talc marks the end of a free span at the span's end, so claiming
/// the whole tail at once wrote to the last page of the initial memory in every instance,
/// a page no call otherwise touches (seen in the pagemap of an instance: one private page
/// more per instance, and one more page for the pool to reset after each per-call instance).
#[derive(Debug)]
pub struct TailThenGrow {
    /// The end of the heap, once there is one.
    end: Option<core::ptr::NonNull<u8>>,
}

unsafe extern "C" {
    /// The first free byte after the static data and the stack (defined by wasm-ld).
    static __heap_base: u8;
}

const WASM_PAGE: usize = 64 << 10;

/// The step in which the tail is claimed: the host's page, the unit the pool resets.
const TAIL_STEP: usize = 4 << 10;

/// What `layout` needs of fresh heap: the block, its alignment and the heap's bookkeeping.
fn needed(layout: core::alloc::Layout) -> usize {
    layout
        .size()
        .saturating_add(layout.align())
        .saturating_add(256)
}

/// The end, at most `limit`, of a heap part that starts at `start` and fits `needed` bytes:
/// rounded up to a whole [`TAIL_STEP`].
fn tail_end(start: usize, needed: usize, limit: usize) -> usize {
    start
        .saturating_add(needed)
        .checked_next_multiple_of(TAIL_STEP)
        .unwrap_or(usize::MAX)
        .min(limit)
}

// SAFETY: `acquire` allocates nothing; it only claims memory no one else uses (the tail
// after `__heap_base`, and pages it grows itself) and extends the heap it claimed.
unsafe impl talc::source::Source for TailThenGrow {
    fn acquire<B: talc::base::binning::Binning>(
        talc: &mut talc::base::Talc<Self, B>,
        layout: core::alloc::Layout,
    ) -> Result<(), ()> {
        let memory_end = core::arch::wasm32::memory_size::<0>() * WASM_PAGE;
        let Some(end) = talc.source.end else {
            // First call: claim the start of the tail of the initial memory.
            let base = (&raw const __heap_base).cast_mut();
            let first_end = tail_end(base as usize, needed(layout), memory_end);
            for size in [first_end, memory_end].map(|end| end.saturating_sub(base as usize)) {
                // SAFETY: nothing but this allocator uses memory from `__heap_base` to the
                // end of linear memory.
                talc.source.end = unsafe { talc.claim(base, size) };
                if talc.source.end.is_some() {
                    return Ok(());
                }
            }
            // The tail is too small to hold a heap: start one in grown pages instead.
            return grow(talc, layout, None);
        };
        if (end.as_ptr() as usize) < memory_end {
            // The rest of the tail, a page at a time.
            let new_end = tail_end(end.as_ptr() as usize, needed(layout), memory_end);
            // SAFETY: `end` is this heap's end, and the memory up to `new_end` is the
            // unclaimed tail, used by nothing else.
            talc.source.end = Some(unsafe { talc.extend(end, new_end as *mut u8) });
            return Ok(());
        }
        grow(talc, layout, Some(end))
    }
}

/// Grows linear memory by enough pages for `layout` and adds them to the heap: extending it
/// when they follow its `end`, else claiming them as a new heap.
fn grow<B: talc::base::binning::Binning>(
    talc: &mut talc::base::Talc<TailThenGrow, B>,
    layout: core::alloc::Layout,
    end: Option<core::ptr::NonNull<u8>>,
) -> Result<(), ()> {
    let pages = needed(layout).div_ceil(WASM_PAGE);
    let previous = core::arch::wasm32::memory_grow::<0>(pages);
    if previous == usize::MAX {
        return Err(());
    }
    GREW.store(true, Ordering::Relaxed);
    let base = (previous * WASM_PAGE) as *mut u8;
    let size = pages * WASM_PAGE;
    let new_end = match end {
        // SAFETY: `end` is this heap's end and the grown pages start right there.
        Some(end) if end.as_ptr() == base => Some(unsafe { talc.extend(end, base.add(size)) }),
        // SAFETY: the grown pages are new and used by nothing else.
        _ => unsafe { talc.claim(base, size) },
    };
    talc.source.end = Some(new_end.ok_or(())?);
    Ok(())
}

unsafe extern "Rust" {
    /// Defined by the component: records a panic message through its logging import.
    safe fn ds_guest_panic_log(message: &str);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write as _;
    let mut message = String::new();
    let _ = write!(message, "{info}");
    ds_guest_panic_log(&message);
    core::arch::wasm32::unreachable()
}

/// The canonical ABI's allocator entry point (wit-bindgen provides it only for p1 targets).
///
/// # Safety
/// Called by the host per the canonical ABI: `old_ptr`/`old_len`/`align` describe a live
/// allocation made here (or `old_len == 0`), and `align` is a power of two.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, handle_alloc_error, realloc};
    let layout;
    let ptr = if old_len == 0 {
        if new_len == 0 {
            return align as *mut u8;
        }
        // SAFETY: the caller passes a power-of-two alignment; the size is non-zero.
        layout = unsafe { Layout::from_size_align_unchecked(new_len, align) };
        // SAFETY: the layout has a non-zero size.
        unsafe { alloc(layout) }
    } else {
        // SAFETY: the caller passes the layout the block was allocated with.
        layout = unsafe { Layout::from_size_align_unchecked(old_len, align) };
        // SAFETY: `old_ptr` was allocated here with `layout`.
        unsafe { realloc(old_ptr, layout, new_len) }
    };
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    ptr
}

/// `memcmp`, which the compiler emits for slice comparisons.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // Skip equal 8-byte words first (keys share long prefixes); the bytes of the first
    // differing word, or the tail, are compared one by one below.
    let mut start = 0;
    while start + 8 <= n {
        // SAFETY: both ranges are readable for `n` bytes and `start + 8 <= n`.
        let (x, y) = unsafe {
            (
                a.add(start).cast::<u64>().read_unaligned(),
                b.add(start).cast::<u64>().read_unaligned(),
            )
        };
        if x != y {
            break;
        }
        start += 8;
    }
    for i in start..n {
        // SAFETY: the caller guarantees both ranges are readable for `n` bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// `bcmp`: like `memcmp`, but only equality matters.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}
