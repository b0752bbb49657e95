//! The runtime support of a `no_std` ds component, shared by the shipped guest and the
//! test-only fault guest: a global allocator, the canonical ABI's `cabi_realloc`, a panic
//! handler, and `memcmp`/`bcmp` (wasi-libc is not linked, so nothing else provides them).
//!
//! The panic handler formats the message and hands it to `ds_guest_panic_log`, which each
//! component defines (it sends the line through its `logging` import), then traps.
//! Natively this crate is empty.
#![no_std]
#![cfg(target_arch = "wasm32")]

extern crate alloc;

use alloc::string::String;

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

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
    for i in 0..n {
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
