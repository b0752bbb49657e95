//! The runtime support of a `no_std` ds component, shared by the shipped guest and the
//! test-only fault guest: a global allocator, the canonical ABI's `cabi_realloc`, a panic
//! handler, and `memcmp`/`bcmp` (wasi-libc is not linked, so nothing else provides them).
//!
//! The panic handler formats the message and hands it to `ds_guest_panic_log`, which each
//! component defines (it sends the line through its `logging` import), then traps.
//! Natively only the allocator's portable part, [`SizeClasses`], is built (and tested).
#![no_std]

#[cfg(target_arch = "wasm32")]
extern crate alloc;

mod size_classes;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub use size_classes::{Reset, SizeClasses};
