//! A size-class front end for a general allocator: small blocks from per-size free lists,
//! and the whole heap forgotten, once it had to grow, when no block is live.
//!
//! A model call makes dozens of small allocations (key parts, encoded keys, the entity's
//! JSON text, the canonical ABI's argument copies) and frees them before it returns. A
//! general allocator (talc) spends 100–200 instructions on each allocate and free, finding,
//! splitting and merging chunks: 8% of the time of a warm `get` through `ds` (perf). With
//! the classes in front, callgrind counts 6% fewer instructions per warm `get`. Here a small
//! request is rounded up to a power-of-two class, 8 bytes to 1 KiB, and served by popping
//! that class's free list; a free pushes the block back. When a class's list is empty the
//! block is cut from a shared chunk, so a call's first blocks lie next to each other as a
//! bump allocator would lay them out (few pages touched, which keeps a warm instance's
//! resident memory small). Larger or more aligned requests go to the backing allocator.
//!
//! A freed small block is only reused for its own class, and chunks are not given back one by
//! one, so on its own this front end would let a long-lived heap fragment: chunks pinned
//! between large blocks, and linear memory growing call after call (a warm instance that
//! served a call of 3,000 small properties could then not fit a 200 KB one under a 3 MiB
//! limit that either fits alone: `tests/instances.rs`). Instead it counts live blocks,
//! and when the count falls to zero (a component's heap is empty between two export calls,
//! once the canonical ABI's post-return has freed the results) after the heap had to grow,
//! it empties every list and has the backing allocator forget all it handed out ([`Reset`]).
//! The next call starts from an empty heap over all the memory the instance has. So memory
//! grows only when a heap laid out by the calls since the last growth cannot serve one
//! more, and each growth wipes that layout: it stays near the largest single call's need.
//! Starting over only after a growth, not at every empty moment, keeps the steady state
//! cheap: callgrind counts 0.3% more instructions per warm `get` than without the count,
//! where forgetting and re-claiming the heap at every call cost 3.8%.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// The smallest class is `1 << MIN_SHIFT` bytes: room for a free-list link.
const MIN_SHIFT: u32 = 3;
/// The largest class is `1 << MAX_SHIFT` bytes (1 KiB).
const MAX_SHIFT: u32 = 10;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// The most alignment a class block guarantees: blocks are cut at multiples of
/// `min(class, MAX_ALIGN)`.
const MAX_ALIGN: usize = 16;
/// Bytes taken from the backing allocator at a time and cut into blocks of any class. Small,
/// so that the large blocks the backing allocator serves lie close to the small ones.
const CHUNK_BYTES: usize = 2 << 10;

/// The class of `layout` (index into the free lists), or `None` for the backing allocator.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > MAX_ALIGN {
        return None;
    }
    // A block's size is at least its alignment, so every class block is aligned enough.
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    if size > 1 << MAX_SHIFT {
        return None;
    }
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift - MIN_SHIFT) as usize)
}

fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

struct Lists {
    /// Head of each class's free list; a free block's first word links to the next one.
    free: [*mut u8; CLASSES],
    /// Blocks handed out and not yet freed, of every size (class and backing).
    live: usize,
    /// The uncut rest of the current chunk: `[next, end)`, both null before the first chunk.
    next: *mut u8,
    end: *mut u8,
}

/// A backing allocator that can forget, at once, every block it handed out.
///
/// # Safety
/// After `reset`, the allocator serves new blocks as if none had been allocated before
/// (it may reuse any memory of the forgotten ones), and never touches the forgotten blocks'
/// memory on its own.
pub unsafe trait Reset: GlobalAlloc {
    /// Whether the allocator took more memory from its source since it was made or last
    /// reset: the sign that the heap, as laid out, no longer served a call.
    fn grew_since_reset(&self) -> bool;

    /// Forgets every block this allocator handed out.
    ///
    /// # Safety
    /// No block of this allocator is live: none will be used or freed again.
    unsafe fn reset(&self);
}

/// Small blocks from size-class free lists in front of the allocator `A`.
///
/// Not thread-safe: it is meant for single-threaded WebAssembly, where the global
/// allocator is never entered from two threads or from an interrupt.
pub struct SizeClasses<A> {
    backing: A,
    lists: UnsafeCell<Lists>,
}

// SAFETY: `SizeClasses::new`'s caller promises that it is never used from two threads at once.
unsafe impl<A: Sync> Sync for SizeClasses<A> {}

impl<A: Reset> SizeClasses<A> {
    /// Small blocks in front of `backing`, which serves the chunks and every large request.
    ///
    /// # Safety
    /// The allocator must never be entered from two threads at once, nor re-entered from an
    /// interrupt (true of single-threaded WebAssembly, the target it is made for).
    pub const unsafe fn new(backing: A) -> Self {
        SizeClasses {
            backing,
            lists: UnsafeCell::new(Lists {
                free: [ptr::null_mut(); CLASSES],
                live: 0,
                next: ptr::null_mut(),
                end: ptr::null_mut(),
            }),
        }
    }

    /// The backing allocator's `alloc`, kept out of line: the class fast path is inlined at
    /// every allocation site, the backing allocator's code is not.
    ///
    /// # Safety
    /// `GlobalAlloc::alloc`'s contract.
    #[cold]
    #[inline(never)]
    unsafe fn backing_alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract.
        let block = unsafe { self.backing.alloc(layout) };
        if !block.is_null() {
            // SAFETY: single-threaded; no other reference to the lists is live.
            unsafe { (*self.lists.get()).live += 1 };
        }
        block
    }

    /// Counts a freed block; when it was the last live one and the heap had to grow since it
    /// last started over, empties every list and resets the backing allocator, so the next
    /// block starts a fresh heap over all the memory there now is.
    ///
    /// # Safety
    /// A block of this allocator was just freed; no other reference to the lists is live.
    #[inline]
    unsafe fn freed_one(&self) {
        // SAFETY: the caller holds the only access to the lists.
        let lists = unsafe { &mut *self.lists.get() };
        lists.live -= 1;
        if lists.live == 0 && self.backing.grew_since_reset() {
            // SAFETY: no block is live, so none of the forgotten ones is used again.
            unsafe { self.forget_all() };
        }
    }

    /// Empties the lists and resets the backing allocator.
    ///
    /// # Safety
    /// No block of this allocator is live.
    #[cold]
    #[inline(never)]
    unsafe fn forget_all(&self) {
        // SAFETY: the caller holds the only access to the lists.
        let lists = unsafe { &mut *self.lists.get() };
        lists.free = [ptr::null_mut(); CLASSES];
        lists.next = ptr::null_mut();
        lists.end = ptr::null_mut();
        // SAFETY: no block is live, and chunks are only reachable through the lists just
        // emptied.
        unsafe { self.backing.reset() };
    }

    /// A block of `class` cut from the current chunk, or from a new one when it is used up.
    ///
    /// # Safety
    /// No other reference to the lists is live.
    #[cold]
    #[inline(never)]
    unsafe fn cut(&self, class: usize) -> *mut u8 {
        // SAFETY: the caller holds the only access to the lists.
        let lists = unsafe { &mut *self.lists.get() };
        let size = class_size(class);
        let align = size.min(MAX_ALIGN);
        let start = lists.next.wrapping_add(lists.next.align_offset(align));
        if !lists.next.is_null() && (lists.end as usize).saturating_sub(start as usize) >= size {
            lists.next = start.wrapping_add(size);
            return start;
        }
        // SAFETY: `[next, end)` is the uncut rest of a chunk, and nothing else uses the lists.
        unsafe { keep_the_rest(lists) };
        // SAFETY: the layout is valid and non-zero.
        let chunk = unsafe {
            self.backing
                .alloc(Layout::from_size_align_unchecked(CHUNK_BYTES, MAX_ALIGN))
        };
        if chunk.is_null() {
            return chunk;
        }
        lists.next = chunk.wrapping_add(size);
        lists.end = chunk.wrapping_add(CHUNK_BYTES);
        chunk
    }
}

/// Cuts the uncut rest of the chunk into the largest blocks that fit and frees them, so that
/// no byte of a chunk is lost when the next one starts.
///
/// # Safety
/// `[lists.next, lists.end)` is unused memory of a chunk (or both are null).
unsafe fn keep_the_rest(lists: &mut Lists) {
    for class in (0..CLASSES).rev() {
        let size = class_size(class);
        loop {
            let start = lists
                .next
                .wrapping_add(lists.next.align_offset(size.min(MAX_ALIGN)));
            if lists.next.is_null() || (lists.end as usize).saturating_sub(start as usize) < size {
                break;
            }
            // SAFETY: `[start, start + size)` is unused chunk memory, aligned for a link.
            unsafe { start.cast::<*mut u8>().write(lists.free[class]) };
            lists.free[class] = start;
            lists.next = start.wrapping_add(size);
        }
    }
    lists.next = ptr::null_mut();
    lists.end = ptr::null_mut();
}

// SAFETY: class blocks are disjoint (each is cut once from a chunk this allocator owns, and
// is on at most one free list or live at a time), at least `layout.size()` bytes (the class
// rounds up) and aligned to `layout.align()` (see `class_of` and `cut`). Everything else is
// the backing allocator's, called with the layout it was allocated with.
unsafe impl<A: Reset> GlobalAlloc for SizeClasses<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract for `layout`.
            return unsafe { self.backing_alloc(layout) };
        };
        // SAFETY: single-threaded (`new`'s contract); no other reference to the lists.
        let lists = unsafe { &mut *self.lists.get() };
        let head = lists.free[class];
        if head.is_null() {
            // SAFETY: `lists` is not used after this call.
            let block = unsafe { self.cut(class) };
            if !block.is_null() {
                // SAFETY: as above; `cut` holds no reference to the lists any more.
                unsafe { (*self.lists.get()).live += 1 };
            }
            return block;
        }
        // SAFETY: a free block holds the link to the next free block in its first word.
        lists.free[class] = unsafe { head.cast::<*mut u8>().read() };
        lists.live += 1;
        head
    }

    // Out of line: inlined at every drop site it would add a tenth to the component's code
    // for a few hundred instructions per call.
    #[inline(never)]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            // SAFETY: `block` came from the backing allocator with `layout`.
            None => unsafe { self.backing.dealloc(block, layout) },
            // SAFETY: single-threaded; `block` is a class block of at least 8 bytes, aligned
            // for a pointer, that its owner gives up.
            Some(class) => unsafe {
                let lists = &mut *self.lists.get();
                block.cast::<*mut u8>().write(lists.free[class]);
                lists.free[class] = block;
            },
        }
        // SAFETY: a block was just freed; the reference above is gone.
        unsafe { self.freed_one() };
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size` is a valid size for `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // The block already has room: a growing `Vec` stays put until it changes class.
            (Some(old), Some(new)) if old == new => block,
            // SAFETY: `block` came from the backing allocator with `layout`.
            (None, None) => unsafe { self.backing.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: `new_layout` is valid and non-zero (the caller's contract).
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    // SAFETY: both blocks are live, disjoint and hold at least this many bytes.
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::cell::Cell;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    /// A bump allocator over a fixed buffer whose `reset` overwrites everything it handed
    /// out with a poison byte before starting over: a reset while any block is live shows as
    /// that block's bytes changing.
    struct PoisoningArena {
        /// Owns the memory; written only through `base`.
        buffer: Vec<u8>,
        /// The buffer's start, taken once as a pointer that may write.
        base: *mut u8,
        used: Cell<usize>,
        resets: Cell<usize>,
        /// What `grew_since_reset` answers: tests set it.
        grows: Cell<bool>,
    }

    const POISON: u8 = 0xEE;

    impl PoisoningArena {
        fn new() -> Self {
            let mut buffer = std::vec![0; 16 << 20];
            PoisoningArena {
                base: buffer.as_mut_ptr(),
                buffer,
                used: Cell::new(0),
                resets: Cell::new(0),
                grows: Cell::new(true),
            }
        }

        fn base(&self) -> *mut u8 {
            self.base
        }
    }

    // SAFETY: blocks are disjoint ranges of the buffer, aligned as asked; after a reset the
    // buffer is handed out again from its start.
    unsafe impl GlobalAlloc for PoisoningArena {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let start = self.base().wrapping_add(self.used.get());
            let start = start.wrapping_add(start.align_offset(layout.align()));
            let end = start as usize - self.base() as usize + layout.size();
            if end > self.buffer.len() {
                return ptr::null_mut();
            }
            self.used.set(end);
            start
        }

        unsafe fn dealloc(&self, _block: *mut u8, _layout: Layout) {}
    }

    // SAFETY: after `reset` the arena serves from its start and never touches old blocks.
    unsafe impl Reset for PoisoningArena {
        fn grew_since_reset(&self) -> bool {
            self.grows.get()
        }

        unsafe fn reset(&self) {
            // SAFETY: `[0, used)` lies in the buffer, which the arena owns.
            unsafe { ptr::write_bytes(self.base(), POISON, self.used.get()) };
            self.used.set(0);
            self.resets.set(self.resets.get() + 1);
        }
    }

    #[test]
    fn classes_round_up_to_powers_of_two() {
        let class = |size, align| class_of(Layout::from_size_align(size, align).ok()?);
        assert_eq!(class(1, 1), Some(0));
        assert_eq!(class(8, 8), Some(0));
        assert_eq!(class(9, 1), Some(1));
        assert_eq!(class(1, 16), Some(1), "a block is at least its alignment");
        assert_eq!(class(1024, 8), Some(CLASSES - 1));
        assert_eq!(
            class(1025, 1),
            None,
            "large requests go to the backing allocator"
        );
        assert_eq!(class(8, 32), None, "so do over-aligned ones");
    }

    /// One step of a random allocation sequence.
    #[derive(Debug, Clone)]
    enum Step {
        Alloc { size: usize, align_shift: u32 },
        Free { index: usize },
        Realloc { index: usize, size: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        // Sizes mostly small, sometimes past the largest class.
        let size = prop_oneof![4 => 1usize..=1100, 1 => 1usize..=20_000];
        prop_oneof![
            3 => (size.clone(), 0u32..=6).prop_map(|(size, align_shift)| Step::Alloc { size, align_shift }),
            2 => any::<usize>().prop_map(|index| Step::Free { index }),
            2 => (any::<usize>(), size).prop_map(|(index, size)| Step::Realloc { index, size }),
        ]
    }

    struct Block {
        ptr: *mut u8,
        layout: Layout,
        fill: u8,
    }

    fn fill(block: &Block) {
        // SAFETY: the block is live and holds `layout.size()` bytes.
        unsafe { ptr::write_bytes(block.ptr, block.fill, block.layout.size()) }
    }

    fn intact(block: &Block, len: usize) -> bool {
        // SAFETY: the block is live and holds at least `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(block.ptr, len) };
        bytes.iter().all(|&b| b == block.fill)
    }

    proptest! {
        /// Whatever the sequence of allocations, frees and reallocations: every live block is
        /// aligned, no two overlap (each keeps its own fill pattern, which also shows that the
        /// heap is never reset under a live block), and a reallocation keeps the bytes it had.
        #[test]
        fn live_blocks_are_aligned_disjoint_and_keep_their_bytes(
            steps in proptest::collection::vec(step(), 1..400)
        ) {
            // SAFETY: the test uses the allocator from this thread only.
            let heap = unsafe { SizeClasses::new(PoisoningArena::new()) };
            let mut live: Vec<Block> = Vec::new();
            for (n, step) in steps.into_iter().enumerate() {
                let fill_byte = (n % 251) as u8 + 1;
                match step {
                    Step::Alloc { size, align_shift } => {
                        let layout = Layout::from_size_align(size, 1 << align_shift).expect("layout");
                        // SAFETY: non-zero size.
                        let ptr = unsafe { heap.alloc(layout) };
                        prop_assert!(!ptr.is_null());
                        prop_assert_eq!(ptr as usize % layout.align(), 0);
                        let block = Block { ptr, layout, fill: fill_byte };
                        fill(&block);
                        live.push(block);
                    }
                    Step::Free { index } if !live.is_empty() => {
                        let block = live.swap_remove(index % live.len());
                        prop_assert!(intact(&block, block.layout.size()));
                        // SAFETY: allocated here with this layout, freed once.
                        unsafe { heap.dealloc(block.ptr, block.layout) };
                    }
                    Step::Realloc { index, size } if !live.is_empty() => {
                        let at = index % live.len();
                        let old = &live[at];
                        let kept = old.layout.size().min(size);
                        // SAFETY: allocated here with this layout; non-zero new size.
                        let ptr = unsafe { heap.realloc(old.ptr, old.layout, size) };
                        prop_assert!(!ptr.is_null());
                        let layout = Layout::from_size_align(size, old.layout.align()).expect("layout");
                        prop_assert_eq!(ptr as usize % layout.align(), 0);
                        let moved = Block { ptr, layout, fill: old.fill };
                        prop_assert!(intact(&moved, kept), "realloc lost bytes");
                        let moved = Block { fill: fill_byte, ..moved };
                        fill(&moved);
                        live[at] = moved;
                    }
                    _ => {}
                }
                for block in &live {
                    prop_assert!(intact(block, block.layout.size()), "a block was overwritten");
                }
            }
            for block in live {
                // SAFETY: allocated here with this layout, freed once.
                unsafe { heap.dealloc(block.ptr, block.layout) };
            }
        }
    }

    #[test]
    fn a_freed_block_is_reused_for_its_class() {
        // SAFETY: this thread only.
        let heap = unsafe { SizeClasses::new(PoisoningArena::new()) };
        let layout = Layout::from_size_align(40, 8).expect("layout");
        let other = Layout::from_size_align(200, 8).expect("layout");
        // SAFETY: non-zero sizes; each block freed once with its layout.
        unsafe {
            // Held throughout, so that the heap is never empty (and never reset).
            let held = heap.alloc(other);
            let first = heap.alloc(layout);
            heap.dealloc(first, layout);
            let again = heap.alloc(Layout::from_size_align(33, 1).expect("layout"));
            assert_eq!(
                first, again,
                "same class (64 bytes): the free list serves it"
            );
            let grown = heap.realloc(again, Layout::from_size_align(33, 1).expect("layout"), 64);
            assert_eq!(grown, again, "growing within the class stays in place");
            heap.dealloc(grown, Layout::from_size_align(64, 1).expect("layout"));
            assert_eq!(heap.backing.resets.get(), 0);
            heap.dealloc(held, other);
        }
    }

    #[test]
    fn the_heap_starts_over_once_no_block_is_live() {
        // SAFETY: this thread only.
        let heap = unsafe { SizeClasses::new(PoisoningArena::new()) };
        let resets = || heap.backing.resets.get();
        let small = Layout::from_size_align(24, 8).expect("layout");
        let large = Layout::from_size_align(5000, 8).expect("layout");
        // SAFETY: non-zero sizes; each block freed once with its layout.
        unsafe {
            let a = heap.alloc(small);
            let b = heap.alloc(large);
            let c = heap.alloc(small);
            heap.dealloc(a, small);
            heap.dealloc(b, large);
            assert_eq!(resets(), 0, "`c` is still live");
            let d = heap.alloc(large);
            heap.dealloc(c, small);
            assert_eq!(resets(), 0, "`d` is still live");
            heap.dealloc(d, large);
            assert_eq!(resets(), 1, "the last live block was freed");
            let first = heap.alloc(large);
            assert_eq!(
                first,
                heap.backing.base(),
                "the next block starts the heap over, where the first chunk was"
            );
            heap.dealloc(first, large);
            assert_eq!(resets(), 2);
            // A heap that did not have to grow is kept as it is.
            heap.backing.grows.set(false);
            let again = heap.alloc(small);
            heap.dealloc(again, small);
            assert_eq!(resets(), 2, "no growth, no reset");
            assert_eq!(heap.alloc(small), again, "the freed block is reused");
        }
    }
}
